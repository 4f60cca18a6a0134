from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


# The image every rule runs in with --sdm apptainer (built from envs/aibench.def).
container: PLAN.config["container"]


include: "rules/service.smk"
include: "rules/client.smk"
include: "rules/monitor.smk"
include: "rules/report.smk"
include: "rules/datasets.smk"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    stop_leftover_services()
    discard_earlier_state()
    skip_scheduler_timers()


onerror:
    stop_leftover_services()
