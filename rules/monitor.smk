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
    script:
        "../scripts/deploy_service.py"


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
