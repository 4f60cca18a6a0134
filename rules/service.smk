# Service lifecycle: deploy -> wait until ready -> (points run) -> stop. These rules call
# sbatch/squeue/scancel, which the rule image lacks: as `run:` rules they execute in Snakemake's own
# process on the login node, outside any container (aibench.login_rules).
# The handle and ready files are temporary: they describe a live deployment only.


rule deploy_service:
    input:
        previous=previous_experiment_stopped,
    output:
        handle=temp(SERVICE.handle),
    log:
        SERVICE.rule_log("deploy"),
    localrule: True
    params:
        service=service_settings,
    run:
        deploy_rule(output, params, log)


rule wait_endpoint:
    input:
        handle=SERVICE.handle,
    output:
        ready=temp(SERVICE.ready),
    log:
        SERVICE.rule_log("wait"),
    localrule: True
    params:
        timeout_s=lambda wc: experiment(wc).service.ready_timeout_s,
        interval_s=lambda wc: experiment(wc).service.ready_interval_s,
    run:
        wait_rule(input, params, log)


rule stop_service:
    input:
        handle=SERVICE.handle,
        points=experiment_point_outputs,
    output:
        stopped=SERVICE.stopped,
    log:
        SERVICE.rule_log("stop"),
    localrule: True
    run:
        stop_rule(input, log)
