# One job per sweep point; the points of an experiment run on each of its deployments (one, or
# one per service-sweep combination).
# The load_slots resource (1 in the profiles) keeps loads from overlapping and distorting each other.
# local_cpu is the CPU of the machine Snakemake runs on: a load takes all of it (the local profile has
# 2, the machine's CPUs) and a figure half, so on the local profile no figure is drawn while a load
# runs; the SLURM profiles do not limit it (loads run on compute nodes), and Snakemake limits only the
# resources a profile lists (snakemake/scheduling/job_scheduler.py, update_available_resources). A
# ready load goes first.


rule run_client:
    input:
        ready=deployment_ready,  # every replica's, when the deployment has several
        prepared=deployment_prepared,
        monitor=monitor_ready,
    output:
        raw=POINT.raw,
        summary=POINT.summary,
    log:
        POINT.client_log,
    wildcard_constraints:
        deployment=deployments_loaded_from(several=False),
    priority: 1
    # all points of a deployment share one SLURM allocation (profile: group-components)
    group:
        "points-{deployment}"
    container:
        PLAN.config["container"]
    resources:
        load_slots=1,
        local_cpu=2,
        slurm_extra=client_placement,
        slurm_account=slurm_account_of_run,
        slurm_partition=client_partition,
        qos=slurm_qos_of_run,
    params:
        point=point_settings,
    script:
        "../scripts/run_client.py"


# A point loaded from several client nodes (experiment client_nodes): this rule coordinates them
# from the login node (aibench.clients.fanout), outside the rule image: under SLURM it submits one job
# of that many nodes, whose batch script srun's an agent per node in the rule image (which has no
# srun); locally it starts that many agent processes. Not grouped: each point is its own allocation.
rule run_client_nodes:
    input:
        ready=deployment_ready,
        prepared=deployment_prepared,
        monitor=monitor_ready,
    output:
        raw=POINT.raw,
        summary=POINT.summary,
    log:
        POINT.client_log,
    wildcard_constraints:
        deployment=deployments_loaded_from(several=True),
    priority: 1
    localrule: True
    handover: True
    container:
        None
    threads: 0
    resources:
        load_slots=1,
        local_cpu=2,
    params:
        point=point_settings,
        nodes=client_nodes_settings,
    script:
        "../scripts/run_client.py"


# Once per deployment, before the first point: the client kind's prepare step (e.g. sysbench's
# test tables); a no-op for clients without one.
rule prepare_client:
    input:
        ready=SERVICE.ready,
    output:
        prepared=temp(SERVICE.prepared),
    log:
        SERVICE.rule_log("prepare"),
    localrule: True
    params:
        client=lambda wc: experiment(wc).client.kind,
        params=lambda wc: experiment(wc).client.params,
        timeout_s=lambda wc: experiment(wc).client.timeout_s,
    script:
        "../scripts/prepare_client.py"
