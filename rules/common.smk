import re
import sys
import threading

from aibench.lifecycle import discard_replaced_state, stop_all
from aibench.login_rules import deploy_rule, stop_rule, wait_rule
from aibench.paths import RunLayout
from aibench.recipes import load_plan, plan_summary
from aibench.slurm_settings import (
    account,
    client_partition_for,
    launch_settings_for,
    monitoring_minutes,
    placement_option,
    planned_minutes,
    with_time_limit,
)

from aibench.snakemake_glue import (
    config_files,
    config_overrides,
    grafana_deployment,
    grafana_readiness,
)

# Every config and recipe file is validated here, when the workflow is parsed:
# a bad file stops the run before anything starts.
PLAN = load_plan(
    config,
    "--config",
    workflow.basedir,
    config_files(workflow),
    config_overrides(workflow),
)
if workflow.is_main_process:
    print(f"aibench: {plan_summary(PLAN)}", file=sys.stderr)
RESULTS = str(PLAN.results)
LAYOUT = RunLayout(RESULTS)
if PLAN.config["launcher"] == "slurm":
    account(
        PLAN.config
    )  # an account from the environment is checked before any job exists
MONITORING = PLAN.monitoring["enabled"]
MONITOR_DIR = f"{RESULTS}/monitoring"
GRAFANA = MONITORING and PLAN.monitoring["grafana"]
GRAFANA_DIR = f"{RESULTS}/grafana"


def launch_settings(resources):
    return launch_settings_for(PLAN.config, resources)


def run_minutes():
    """--time of the run's Prometheus and Grafana jobs: as long as all deployments may need."""
    return monitoring_minutes(
        list(PLAN.experiments.values()), PLAN.config["serial_experiments"]
    )


wildcard_constraints:
    experiment="|".join(re.escape(name) for name in PLAN.experiments),
    point=r"[A-Za-z0-9.+_-]+",
    param=r"[a-z][a-z0-9_]*",


def experiment(wildcards):
    return PLAN.experiments[wildcards.experiment]


def point_dirs(name=None):
    names = [name] if name else list(PLAN.experiments)
    return [
        f"{RESULTS}/{exp}/points/{point.id}"
        for exp in names
        for point in PLAN.experiments[exp].points
    ]


def point_summaries(name=None):
    return [f"{d}/summary.json" for d in point_dirs(name)]


def point_outputs(name=None):
    """What marks a point finished: its Prometheus window when monitored, else its summary."""
    leaf = "metrics.csv" if MONITORING else "summary.json"
    return [f"{d}/{leaf}" for d in point_dirs(name)]


def previous_experiment_stopped(wildcards):
    """With serial_experiments, an experiment deploys after the one before it has stopped."""
    names = list(PLAN.experiments)
    index = names.index(wildcards.experiment)
    if not PLAN.config["serial_experiments"] or index == 0:
        return []
    return [f"{RESULTS}/{names[index - 1]}/service/stopped.json"]


def experiment_point_outputs(wildcards):

    return point_outputs(wildcards.experiment)


def monitor_ready(wildcards):
    return [f"{MONITOR_DIR}/ready.json"] if MONITORING else []


def figures():
    names = [
        (name, param) for name, exp in PLAN.experiments.items() for param in exp.sweep
    ]
    names += [
        (name, "ttft_cdf")
        for name, exp in PLAN.experiments.items()
        if exp.client.kind == "llm"
    ]
    names += [(name, "resources") for name in PLAN.experiments if MONITORING]
    return [
        f"{RESULTS}/figures/{name}/{figure}.{ext}"
        for name, figure in names
        for ext in ("png", "svg")
    ]


def stopped_files():
    """Every deployment's stopped.json: the run is over once all exist."""
    files = [f"{RESULTS}/{name}/service/stopped.json" for name in PLAN.experiments]
    if MONITORING:
        files.append(f"{MONITOR_DIR}/stopped.json")
    if GRAFANA:
        files.append(f"{GRAFANA_DIR}/stopped.json")
    return files


def run_inputs():
    """The run's config files and every recipe it used (copied and hashed into the manifest)."""
    files = list(config_files(workflow))
    for exp in PLAN.experiments.values():
        files += [exp.file, exp.service.file, exp.client.file]
    return [str(f) for f in dict.fromkeys(files)]


def all_targets():
    targets = [f"{RESULTS}/summary.csv", *figures(), *stopped_files()]
    return targets + [f"{RESULTS}/manifest.json"]


def service_settings(wildcards):
    exp = experiment(wildcards)
    return {
        "experiment": exp.name,
        "kind": exp.service.kind,
        "params": exp.service.params,
        "targets_dir": str(LAYOUT.targets) if MONITORING else None,
        "grace_s": exp.service.stop_grace_s,
        "image": exp.service.image,
        "ready_timeout_s": exp.service.ready_timeout_s,
        "ready_interval_s": exp.service.ready_interval_s,
        **launch_settings(with_time_limit(exp.service.resources, planned_minutes(exp))),
    }


def monitor_settings(wildcards):
    return {
        "experiment": "monitoring",
        "kind": "prometheus",
        "params": {
            "scrape_interval_s": PLAN.monitoring["scrape_interval_s"],
            "targets_dir": str(LAYOUT.targets.absolute()),
        },
        **launch_settings({"cpus": 1, "mem_mb": 2000, "time_min": run_minutes()}),
    }


def grafana_settings(wildcards, input):
    return {
        "experiment": "grafana",
        "kind": "grafana",
        **grafana_deployment(PLAN, input.monitor),
        **launch_settings({"cpus": 1, "mem_mb": 1000, "time_min": run_minutes()}),
    }


def point_settings(wildcards):
    exp = experiment(wildcards)
    point = exp.point(wildcards.point)
    return {
        "experiment": exp.name,
        "point": point.id,
        "repeat": point.repeat,
        "params": point.params,
        "swept": point.swept,
        "client_kind": exp.client.kind,
        "client_recipe": exp.client.name,
        "timeout_s": exp.client.timeout_s,
        "service": {"kind": exp.service.kind, "recipe": exp.service.name},
    }


def client_placement(wildcards, input):
    """sbatch options placing a point's client on the service's node, or away from it."""
    if PLAN.config["launcher"] != "slurm":
        return ""
    return placement_option(input.ready, experiment(wildcards).placement)


def slurm_account_of_run(wildcards):
    return account(PLAN.config) or ""


def slurm_qos_of_run(wildcards):
    """The run's QoS for client jobs (the plugin's `qos` resource; it refuses --qos in slurm_extra)."""
    return PLAN.config["slurm"]["qos"] or ""


def client_partition(wildcards):
    """A same-node client job asks for its service's partition (its node is in no other one)."""
    return client_partition_for(PLAN.config, experiment(wildcards))


def stop_leftover_services():

    for line in stop_all(LAYOUT.service_dirs()):
        print(f"aibench: stopped leftover service {line}")


def discard_earlier_state():
    """After a successful run: the data of deployments that were replaced is no longer needed."""
    for path in discard_replaced_state(LAYOUT.service_dirs()):
        print(f"aibench: removed an earlier deployment's state {path}")


def skip_scheduler_timers():
    """After a successful run, cancel the job scheduler's pending 1-second re-evaluation timers
    (threading.Timer): nothing is left to schedule, and Python would wait for them before exiting.
    """
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
