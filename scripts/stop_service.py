"""stop_service / stop_monitor / stop_grafana: stop the service job (scancel on MeluXina)."""

from aibench.login_rules import stop_rule

stop_rule(snakemake.input, snakemake.log)
