# The run's own Prometheus: started first, scrapes the exporters every service job registers
# through file_sd, read back per point window, stopped after the last point.


rule deploy_monitor:
    output:
        handle=temp(MONITOR.handle),
    log:
        MONITOR.rule_log("deploy"),
    localrule: True
    handover: True
    container:
        None
    threads: 0
    resources:
        mem_mb=500,
    params:
        service=monitor_settings,
    script:
        "../scripts/deploy_service.py"


use rule wait_endpoint as wait_monitor with:
    input:
        handle=MONITOR.handle,
    output:
        ready=temp(MONITOR.ready),
    log:
        MONITOR.rule_log("wait"),
    localrule: True
    handover: True
    params:
        timeout_s=PLAN.monitoring["ready_timeout_s"],
        interval_s=lambda wc: PLAN.monitors["prometheus"].ready_interval_s,


rule scrape_metrics:
    input:
        summary=POINT.summary,
        monitor=MONITOR.ready,
    output:
        metrics=POINT.metrics,
    log:
        POINT.scrape_log,
    localrule: True
    params:
        interval_s=PLAN.monitoring["scrape_interval_s"],
    script:
        "../scripts/scrape_metrics.py"


use rule stop_service as stop_monitor with:
    input:
        handle=MONITOR.handle,
        ready=MONITOR.ready,
        points=point_outputs(),
    output:
        stopped=MONITOR.stopped,
    log:
        MONITOR.rule_log("stop"),
    localrule: True
    handover: True


# Grafana (monitoring.grafana: true, e.g. on MeluXina): dashboards on the run's Prometheus, reached
# with `aibench tunnel grafana`; up from when Prometheus is ready until the last point is scraped.
rule deploy_grafana:
    input:
        monitor=MONITOR.ready,
    output:
        handle=temp(RUN.grafana.handle),
    log:
        RUN.grafana.rule_log("deploy"),
    localrule: True
    handover: True
    container:
        None
    threads: 0
    resources:
        mem_mb=500,
    params:
        service=grafana_settings,
    script:
        "../scripts/deploy_service.py"


use rule wait_endpoint as wait_grafana with:
    input:
        handle=RUN.grafana.handle,
    output:
        ready=temp(RUN.grafana.ready),
    log:
        RUN.grafana.rule_log("wait"),
    localrule: True
    handover: True
    params:
        timeout_s=lambda wc: grafana_readiness(PLAN)[0],
        interval_s=lambda wc: grafana_readiness(PLAN)[1],


use rule stop_service as stop_grafana with:
    input:
        handle=RUN.grafana.handle,
        ready=RUN.grafana.ready,
        points=point_outputs(),
    output:
        stopped=RUN.grafana.stopped,
    log:
        RUN.grafana.rule_log("stop"),
    localrule: True
    handover: True
