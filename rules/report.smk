# All points -> one tidy table -> figures (each with a caption in the report).


# ttft_cdf.png and resources.png are their own figures, not swept parameters of those names
ruleorder: plot_ttft_cdf > plot_resources > plot_sweep


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


# Figures are drawn from the points' summaries (client metrics), so they need not wait for the
# last Prometheus window to be scraped.
rule plot_sweep:
    input:
        summaries=lambda wc: point_summaries(wc.experiment),
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
        point_dirs=lambda wc: point_dirs(wc.experiment),
        swept=lambda wc: list(experiment(wc).sweep),
        client=lambda wc: experiment(wc).client.kind,
    script:
        "../scripts/plot_sweep.py"


rule plot_ttft_cdf:
    input:
        raw=lambda wc: [f"{d}/raw.csv.gz" for d in point_dirs(wc.experiment)],
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}/ttft_cdf.png",
            caption="../report/ttft_cdf.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "TTFT distribution"},
        ),
        svg=f"{RESULTS}/figures/{{experiment}}/ttft_cdf.svg",
    log:
        f"{RESULTS}/logs/plot_{{experiment}}_ttft_cdf.log",
    localrule: True
    params:
        points=lambda wc: {
            p.id: f"{RESULTS}/{wc.experiment}/points/{p.id}/raw.csv.gz"
            for p in experiment(wc).points
        },
    script:
        "../scripts/plot_ttft_cdf.py"


rule plot_resources:
    input:
        metrics=lambda wc: [f"{d}/metrics.csv" for d in point_dirs(wc.experiment)],
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}/resources.png",
            caption="../report/resources.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "resource use"},
        ),
        svg=f"{RESULTS}/figures/{{experiment}}/resources.svg",
    log:
        f"{RESULTS}/logs/plot_{{experiment}}_resources.log",
    localrule: True
    params:
        points=lambda wc: {
            p.id: f"{RESULTS}/{wc.experiment}/points/{p.id}/metrics.csv"
            for p in experiment(wc).points
        },
    script:
        "../scripts/plot_resources.py"


# Provenance: written last, once every deployment is stopped (docs/results-schema.md, "manifest.json").
rule manifest:
    input:
        table=f"{RESULTS}/summary.csv",
        stopped=stopped_files(),
    output:
        manifest=f"{RESULTS}/manifest.json",
    log:
        f"{RESULTS}/logs/manifest.log",
    localrule: True
    params:
        inputs=run_inputs(),
        config=PLAN.config,
        point_dirs=point_dirs(),
    script:
        "../scripts/write_manifest.py"
