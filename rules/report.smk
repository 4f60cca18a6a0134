# All points -> one tidy table -> figures (each with a caption in the report). A figure takes half
# the submit host's CPU (local_cpu, rules/client.smk): on the local profile none is drawn beside a load.


# ttft_cdf.png, resources.png and scaling.png are their own figures, not swept parameters of those names
ruleorder: plot_ttft_cdf > plot_resources > plot_scaling > plot_sweep


rule aggregate:
    input:
        points=point_outputs(),
    output:
        table=RUN.summary,
    log:
        RUN.log("aggregate"),
    localrule: True
    params:
        point_dirs=point_dirs(),
    script:
        "../scripts/aggregate.py"


# Sweep figures show the client's metrics and, when monitored, the server's own (its /metrics over
# each point's window): they wait for the points' Prometheus windows.
rule plot_sweep:
    input:
        summaries=lambda wc: point_summaries(wc.experiment),
        windows=lambda wc: point_outputs(wc.experiment),
    output:
        png=report(
            RUN.figure("{experiment}", "{param}", "png"),
            caption="../report/sweep.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "swept parameter": "{param}"},
        ),
        svg=RUN.figure("{experiment}", "{param}", "svg"),
    log:
        RUN.log("plot_{experiment}_{param}"),
    localrule: True
    resources:
        local_cpu=1,
    params:
        point_dirs=lambda wc: point_dirs(wc.experiment),
        swept=lambda wc: list(experiment(wc).sweep),
        client=lambda wc: experiment(wc).client.kind,
        description=lambda wc: experiment(wc).description,
    script:
        "../scripts/plot_sweep.py"


# Where a service sweep varies the replicas: throughput and p99 against them, beside the ideal line.
rule plot_scaling:
    input:
        summaries=lambda wc: point_summaries(wc.experiment),
    output:
        png=report(
            RUN.figure("{experiment}", "scaling", "png"),
            caption="../report/scaling.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "scaling"},
        ),
        svg=RUN.figure("{experiment}", "scaling", "svg"),
    log:
        RUN.log("plot_{experiment}_scaling"),
    localrule: True
    resources:
        local_cpu=1,
    params:
        point_dirs=lambda wc: point_dirs(wc.experiment),
        scale=lambda wc: scaling_parameter(experiment(wc).service_sweep),
        swept=lambda wc: list(experiment(wc).sweep),
        client=lambda wc: experiment(wc).client.kind,
    script:
        "../scripts/plot_scaling.py"


rule plot_ttft_cdf:
    input:
        raw=lambda wc: [str(p.raw) for p in points_of(wc.experiment)],
    output:
        png=report(
            RUN.figure("{experiment}", "ttft_cdf", "png"),
            caption="../report/ttft_cdf.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "TTFT distribution"},
        ),
        svg=RUN.figure("{experiment}", "ttft_cdf", "svg"),
    log:
        RUN.log("plot_{experiment}_ttft_cdf"),
    localrule: True
    resources:
        local_cpu=1,
    params:
        points=lambda wc: {
            name: str(p.raw) for name, p in point_names(wc.experiment).items()
        },
    script:
        "../scripts/plot_ttft_cdf.py"


rule plot_resources:
    input:
        metrics=lambda wc: [str(p.metrics) for p in points_of(wc.experiment)],
    output:
        png=report(
            RUN.figure("{experiment}", "resources", "png"),
            caption="../report/resources.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "resource use"},
        ),
        svg=RUN.figure("{experiment}", "resources", "svg"),
    log:
        RUN.log("plot_{experiment}_resources"),
    localrule: True
    resources:
        local_cpu=1,
    params:
        points=lambda wc: {
            name: str(p.metrics) for name, p in point_names(wc.experiment).items()
        },
    script:
        "../scripts/plot_resources.py"


# Each experiment's overview page, first in its category: needs the manifest (the nodes' hardware).
rule overview:
    input:
        manifest=RUN.manifest,
    output:
        html=report(
            RUN.figure("{experiment}", "overview", "html"),
            caption="../report/overview.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "overview"},
        ),
    log:
        RUN.log("overview_{experiment}"),
    localrule: True
    script:
        "../scripts/write_overview.py"


# Provenance: written last, once every deployment is stopped (docs/results-schema.md, "manifest.json").
rule manifest:
    input:
        table=RUN.summary,
        stopped=stopped_files(),
    output:
        manifest=RUN.manifest,
    log:
        RUN.log("manifest"),
    localrule: True
    params:
        inputs=run_inputs(),
        config=PLAN.config,
        point_dirs=point_dirs(),
    script:
        "../scripts/write_manifest.py"
