# Service lifecycle: deploy -> wait until ready -> (points run) -> stop. These rules call
# sbatch/squeue/scancel, which the rule image lacks: local rules with `container: None`, so their
# scripts run on the login node with Snakemake's own Python, outside any container (aibench.login_rules).
# Scripts, not `run:` blocks: Snakemake spawns a `run:` job as a new Snakemake process that parses the
# whole workflow again (snakemake/executors/local.py, run_single_job), seconds per deployment step.
# `handover: True` says what they do, hand work to another system (snakemake/workflow.py: "a local rule,
# which might spawn jobs to a cluster"); with its own `resources` such a rule does not take all of them.
# They wait rather than compute: `threads: 0` (snakemake/executors/local.py keeps workers for such
# jobs); the local profile keeps a job slot free for them (see its `cores`).
# The handle and ready files are temporary: they describe a live deployment only.


rule deploy_service:
    input:
        previous=previous_deployment_stopped,
    output:
        handle=temp(SERVICE.handle),
    log:
        SERVICE.rule_log("deploy"),
    localrule: True
    handover: True
    container:
        None
    threads: 0
    resources:
        mem_mb=500,
    params:
        service=service_settings,
    script:
        "../scripts/deploy_service.py"


rule wait_endpoint:
    input:
        handle=SERVICE.handle,
    output:
        ready=temp(SERVICE.ready),
    log:
        SERVICE.rule_log("wait"),
    localrule: True
    handover: True
    container:
        None
    threads: 0
    resources:
        mem_mb=500,
    params:
        timeout_s=lambda wc: deployment(wc).service.ready_timeout_s,
        interval_s=lambda wc: deployment(wc).service.ready_interval_s,
    script:
        "../scripts/wait_endpoint.py"


rule stop_service:
    input:
        handle=SERVICE.handle,
        ready=SERVICE.ready,  # kept until the stop, which records it in stopped.json
        points=deployment_point_outputs,
    output:
        stopped=SERVICE.stopped,
    log:
        SERVICE.rule_log("stop"),
    localrule: True
    handover: True
    container:
        None
    threads: 0
    resources:
        mem_mb=500,
    script:
        "../scripts/stop_service.py"
