# All points -> one tidy table -> figures (each with a caption in the report).


rule aggregate:
    input:
        points=point_outputs(),
    output:
        table=f"{RESULTS}/summary.csv",
    log:
        f"{RESULTS}/logs/aggregate.log",
    params:
        point_dirs=point_dirs(),
    localrule: True
    script:
        "../scripts/aggregate.py"


rule plot_sweep:
    input:
        table=f"{RESULTS}/summary.csv",
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}/{{param}}.png",
            caption="../report/sweep.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "swept parameter": "{param}"},
        ),
        svg=f"{RESULTS}/figures/{{experiment}}/{{param}}.svg",
    log:
        f"{RESULTS}/logs/plot_{{experiment}}_{{param}}.log",
    params:
        swept=lambda wc: list(experiment(wc).sweep),
    localrule: True
    script:
        "../scripts/plot_sweep.py"
