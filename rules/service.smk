# Service lifecycle: deploy -> wait until ready -> (points run) -> stop. These rules call
# sbatch/squeue/scancel, which the rule image lacks: as `run:` rules they execute in Snakemake's own
# process on the login node, outside any container (aibench.login_rules).
# handle.json and ready.json are temporary: they describe a live deployment only.


rule deploy_service:
    input:
        previous=previous_experiment_stopped,
    output:
        handle=temp(f"{RESULTS}/{{experiment}}/service/handle.json"),
    log:
        f"{RESULTS}/{{experiment}}/service/deploy.log",
    localrule: True
    params:
        service=service_settings,
    run:
        deploy_rule(output, params, log)


rule wait_endpoint:
    input:
        handle=f"{RESULTS}/{{experiment}}/service/handle.json",
    output:
        ready=temp(f"{RESULTS}/{{experiment}}/service/ready.json"),
    log:
        f"{RESULTS}/{{experiment}}/service/wait.log",
    localrule: True
    params:
        timeout_s=lambda wc: experiment(wc).service.ready_timeout_s,
        interval_s=lambda wc: experiment(wc).service.ready_interval_s,
    run:
        wait_rule(input, params, log)


rule stop_service:
    input:
        handle=f"{RESULTS}/{{experiment}}/service/handle.json",
        points=experiment_point_outputs,
    output:
        stopped=f"{RESULTS}/{{experiment}}/service/stopped.json",
    log:
        f"{RESULTS}/{{experiment}}/service/stop.log",
    localrule: True
    run:
        stop_rule(input, log)
