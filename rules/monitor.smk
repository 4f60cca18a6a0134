# The run's own Prometheus: started first, scrapes the exporters every service job registers
# through file_sd, read back per point window, stopped after the last point.


rule deploy_monitor:
    output:
        handle=temp(f"{MONITOR_DIR}/handle.json"),
    log:
        f"{MONITOR_DIR}/deploy.log",
    localrule: True
    params:
        service=monitor_settings,
    run:
        deploy_rule(output, params, log)


use rule wait_endpoint as wait_monitor with:
    input:
        handle=f"{MONITOR_DIR}/handle.json",
    output:
        ready=temp(f"{MONITOR_DIR}/ready.json"),
    log:
        f"{MONITOR_DIR}/wait.log",
    localrule: True
    params:
        timeout_s=PLAN.monitoring["ready_timeout_s"],
        interval_s=0.1,


rule scrape_metrics:
    input:
        summary=f"{RESULTS}/{{experiment}}/points/{{point}}/summary.json",
        monitor=f"{MONITOR_DIR}/ready.json",
    output:
        metrics=f"{RESULTS}/{{experiment}}/points/{{point}}/metrics.csv",
    log:
        f"{RESULTS}/{{experiment}}/points/{{point}}/scrape.log",
    localrule: True
    params:
        interval_s=PLAN.monitoring["scrape_interval_s"],
    script:
        "../scripts/scrape_metrics.py"


use rule stop_service as stop_monitor with:
    input:
        handle=f"{MONITOR_DIR}/handle.json",
        points=point_outputs(),
    output:
        stopped=f"{MONITOR_DIR}/stopped.json",
    log:
        f"{MONITOR_DIR}/stop.log",
    localrule: True


# Grafana (monitoring.grafana: true, e.g. on MeluXina): dashboards on the run's Prometheus, reached
# with `aibench tunnel grafana`; up from when Prometheus is ready until the last point is scraped.
rule deploy_grafana:
    input:
        monitor=f"{MONITOR_DIR}/ready.json",
    output:
        handle=temp(f"{GRAFANA_DIR}/handle.json"),
    log:
        f"{GRAFANA_DIR}/deploy.log",
    localrule: True
    params:
        service=grafana_settings,
    run:
        deploy_rule(output, params, log)


use rule wait_endpoint as wait_grafana with:
    input:
        handle=f"{GRAFANA_DIR}/handle.json",
    output:
        ready=temp(f"{GRAFANA_DIR}/ready.json"),
    log:
        f"{GRAFANA_DIR}/wait.log",
    localrule: True
    params:
        timeout_s=grafana_readiness()[0],
        interval_s=grafana_readiness()[1],


use rule stop_service as stop_grafana with:
    input:
        handle=f"{GRAFANA_DIR}/handle.json",
        ready=f"{GRAFANA_DIR}/ready.json",
        points=point_outputs(),
    output:
        stopped=f"{GRAFANA_DIR}/stopped.json",
    log:
        f"{GRAFANA_DIR}/stop.log",
    localrule: True
