from snakemake.utils import min_version


min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/service.smk"
include: "rules/client.smk"
include: "rules/monitor.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True


onsuccess:
    stop_leftover_services()


onerror:
    stop_leftover_services()
