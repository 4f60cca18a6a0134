# All points -> one tidy table -> figures (each with a caption in the report).


rule aggregate:
    input:
        points=point_outputs(),
    output:
        table=f"{RESULTS}/summary.csv",
    log:
        f"{RESULTS}/logs/aggregate.log",
    localrule: True
    params:
        point_dirs=point_dirs(),
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
    localrule: True
    params:
        swept=lambda wc: list(experiment(wc).sweep),
    script:
        "../scripts/plot_sweep.py"
