"""deploy_service / deploy_monitor / deploy_grafana: start the service job (sbatch on MeluXina)."""

from aibench.login_rules import deploy_rule

deploy_rule(snakemake.output, snakemake.params, snakemake.log)
