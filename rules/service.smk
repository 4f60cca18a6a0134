# Service lifecycle: deploy -> wait until ready -> (points run) -> stop. These rules run on the login
# node outside any container (container: None): they call sbatch/squeue/scancel, absent from the image.
# handle.json and ready.json are temporary: they describe a live deployment only.


rule deploy_service:
    input:
        previous=previous_experiment_stopped,
    output:
        handle=temp(f"{RESULTS}/{{experiment}}/service/handle.json"),
    log:
        f"{RESULTS}/{{experiment}}/service/deploy.log",
    localrule: True
    # talks to SLURM / starts services: on the login node, outside any container
    container:
        None
    params:
        service=service_settings,
    script:
        "../scripts/deploy_service.py"


rule wait_endpoint:
    input:
        handle=f"{RESULTS}/{{experiment}}/service/handle.json",
    output:
        ready=temp(f"{RESULTS}/{{experiment}}/service/ready.json"),
    log:
        f"{RESULTS}/{{experiment}}/service/wait.log",
    localrule: True
    # talks to SLURM / starts services: on the login node, outside any container
    container:
        None
    params:
        timeout_s=lambda wc: experiment(wc).service.ready_timeout_s,
        interval_s=lambda wc: experiment(wc).service.ready_interval_s,
    script:
        "../scripts/wait_endpoint.py"


rule stop_service:
    input:
        handle=f"{RESULTS}/{{experiment}}/service/handle.json",
        points=experiment_point_outputs,
    output:
        stopped=f"{RESULTS}/{{experiment}}/service/stopped.json",
    log:
        f"{RESULTS}/{{experiment}}/service/stop.log",
    localrule: True
    # talks to SLURM / starts services: on the login node, outside any container
    container:
        None
    script:
        "../scripts/stop_service.py"
