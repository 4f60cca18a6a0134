import math
import re
import sys
import threading

from aibench.clients.presentation import SCALING, presentation_of, scaling_parameter
from aibench.clients.fanout import cancel_leftover_jobs
from aibench.contracts import ClientNodes, DeploymentSpec, Readiness
from aibench.lifecycle import stop_all
from aibench.recipes import load_plan, plan_summary
from aibench.rundir import RunDir, discard_retired_state
from aibench.slurm_settings import (
    account,
    client_partition_for,
    launch_settings_for,
    monitoring_minutes,
    placement_option,
    service_minutes,
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
# every path of the run comes from its RunDir; "{deployment}" and "{point}" make them patterns. A
# deployment is an experiment's (its unit: "<experiment>") or one of its service sweep's
# ("<experiment>/<id>"); figures are per "{experiment}".
RUN = RunDir(RESULTS)
POINT = RUN.point("{deployment}", "{point}")
# a deployment's service jobs: "<unit>/service", or with replicas "<unit>/service-r<n>" each
SERVICE_JOBS = {
    str(RUN.service(unit.unit, replica).path.relative_to(RUN.root)): (unit, replica)
    for unit in PLAN.deployments.values()
    for replica in unit.replica_numbers
}
SERVICE = RUN.service_job("{service}")
if PLAN.config["launcher"] == "slurm":
    account(
        PLAN.config
    )  # an account from the environment is checked before any job exists
#: seconds the client nodes' agents have to start and register once their job runs
CLIENT_NODES_REGISTER_S = 120
MONITORING = PLAN.monitoring["enabled"]
MONITOR = RUN.monitoring
GRAFANA = MONITORING and PLAN.monitoring["grafana"]


def launch_settings(resources):
    """The Placement of a deployment with these resources (launcher, runtime, SLURM options)."""
    return launch_settings_for(PLAN.config, resources)


def run_minutes():
    """--time of the run's Prometheus and Grafana jobs: as long as all deployments may need."""
    return monitoring_minutes(
        list(PLAN.experiments.values()), PLAN.config["serial_experiments"]
    )


wildcard_constraints:
    experiment="|".join(re.escape(name) for name in PLAN.experiments),
    deployment="|".join(re.escape(unit) for unit in PLAN.deployments),
    service="|".join(re.escape(path) for path in SERVICE_JOBS),
    point=r"[A-Za-z0-9.+_-]+",
    param=r"[a-z][a-z0-9_]*",


def experiment(wildcards):
    """The experiment of a figure's wildcards, or of a deployment's."""
    if "experiment" in wildcards.keys():
        return PLAN.experiments[wildcards.experiment]
    return PLAN.experiments[deployment(wildcards).experiment]


def deployment(wildcards):
    """The Deployment of a point's wildcards, or of one of its service jobs'."""
    if "deployment" in wildcards.keys():
        return PLAN.deployments[wildcards.deployment]
    return SERVICE_JOBS[wildcards.service][0]


def service_jobs(unit):
    """The ServiceDirs of a Deployment's service jobs (its replicas)."""
    return [RUN.service(unit.unit, replica) for replica in unit.replica_numbers]


def deployment_ready(wildcards):
    return [str(s.ready) for s in service_jobs(deployment(wildcards))]


def deployment_prepared(wildcards):
    return [str(s.prepared) for s in service_jobs(deployment(wildcards))]


def points_of(name=None):
    """The PointDirs of one experiment (every deployment's), or of all, in the run's order."""
    names = [name] if name else list(PLAN.experiments)
    return [
        point
        for exp in names
        for unit in PLAN.experiments[exp].deployments
        for point in deployment_points(unit)
    ]


def deployment_points(unit):
    """The PointDirs of one Deployment."""
    exp = PLAN.experiments[unit.experiment]
    return [RUN.point(unit.unit, point.id) for point in exp.points]


def point_names(name):
    """An experiment's points by name in its figures' legends: "<deployment>/<point>" in a service sweep."""
    exp = PLAN.experiments[name]
    return {
        (point.id if unit.id is None else f"{unit.id}/{point.id}"): RUN.point(
            unit.unit, point.id
        )
        for unit in exp.deployments
        for point in exp.points
    }


def point_dirs(name=None):
    return [str(p.path) for p in points_of(name)]


def point_summaries(name=None):
    return [str(p.summary) for p in points_of(name)]


def point_outputs(name=None):
    """What marks a point finished: its Prometheus window when monitored, else its summary."""
    return [str(p.metrics if MONITORING else p.summary) for p in points_of(name)]


def previous_deployment_stopped(wildcards):
    """An experiment's deployments run one after another, or parallel_deployments at a time: the
    n-th deploys once the (n - parallel_deployments)-th has stopped. With serial_experiments, its first
    ones deploy after every deployment of the experiment before it has stopped."""
    unit = deployment(wildcards)
    exp = PLAN.experiments[unit.experiment]
    index = exp.deployments.index(unit)
    if index >= exp.parallel_deployments:
        earlier = exp.deployments[index - exp.parallel_deployments]
        return [str(s.stopped) for s in service_jobs(earlier)]
    names = list(PLAN.experiments)
    position = names.index(exp.name)
    if not PLAN.config["serial_experiments"] or position == 0:
        return []
    before = PLAN.experiments[names[position - 1]].deployments
    return [str(s.stopped) for d in before for s in service_jobs(d)]


def deployment_point_outputs(wildcards):
    """What marks each point of a deployment finished (its stop waits for them)."""
    return [
        str(p.metrics if MONITORING else p.summary)
        for p in deployment_points(deployment(wildcards))
    ]


def monitor_ready(wildcards):
    return [str(MONITOR.ready)] if MONITORING else []


def figures():
    names = [
        (name, param) for name, exp in PLAN.experiments.items() for param in exp.sweep
    ]
    names += [
        (name, figure)
        for name, exp in PLAN.experiments.items()
        for figure in presentation_of(exp.client.kind).raw_figures
    ]
    names += [(name, "resources") for name in PLAN.experiments if MONITORING]
    names += [
        (name, SCALING)
        for name, exp in PLAN.experiments.items()
        if scaling_parameter(exp.service_sweep)
        and len(exp.service_sweep[scaling_parameter(exp.service_sweep)]) > 1
    ]
    return [
        str(RUN.figure(name, figure, ext))
        for name, figure in names
        for ext in ("png", "svg")
    ]


def stopped_files():
    """Every deployment's stopped.json: the run is over once all exist."""
    files = [str(RUN.service_job(path).stopped) for path in SERVICE_JOBS]
    if MONITORING:
        files.append(str(MONITOR.stopped))
    if GRAFANA:
        files.append(str(RUN.grafana.stopped))
    return files


def run_inputs():
    """The run's config files and every recipe it used (copied and hashed into the manifest)."""
    files = list(config_files(workflow))
    for exp in PLAN.experiments.values():
        files += [exp.file, exp.service.file, exp.client.file]
    files += [
        recipe.file for recipe in PLAN.monitors.values()
    ]  # Prometheus', Grafana's
    return [str(f) for f in dict.fromkeys(files)]


def all_targets():
    targets = [str(RUN.summary), *figures(), *stopped_files()]
    overviews = [str(RUN.figure(name, "overview", "html")) for name in PLAN.experiments]
    return targets + [str(RUN.manifest), *overviews]


# The deploy rules' params are DeploymentSpecs as plain JSON: Snakemake's params rerun trigger compares
# only builtin values, and a changed recipe must still redeploy (aibench.login_rules.deploy_rule).
def service_settings(wildcards):
    exp, service = experiment(wildcards), deployment(wildcards).service
    minutes = service_minutes(
        exp, list(PLAN.experiments.values()), PLAN.config["serial_experiments"]
    )
    resources = with_time_limit(service.resources, minutes)
    return DeploymentSpec(
        experiment=exp.name,
        kind=service.kind,
        params=service.params,
        placement=launch_settings(resources),
        targets_dir=str(RUN.targets) if MONITORING else None,
        grace_s=service.stop_grace_s,
        image=service.image,
        readiness=Readiness(service.ready_timeout_s, service.ready_interval_s),
    ).to_json()


def monitor_settings(wildcards):
    recipe = PLAN.monitors["prometheus"]
    params = {
        **recipe.params,
        "scrape_interval_s": PLAN.monitoring["scrape_interval_s"],
        "targets_dir": str(RUN.targets.absolute()),
    }
    placement = launch_settings(with_time_limit(recipe.resources, run_minutes()))
    return DeploymentSpec(
        "monitoring",
        "prometheus",
        params,
        placement,
        grace_s=recipe.stop_grace_s,
        image=recipe.image,
    ).to_json()


def grafana_settings(wildcards, input):
    recipe = PLAN.monitors["grafana"]
    placement = launch_settings(with_time_limit(recipe.resources, run_minutes()))
    return grafana_deployment(PLAN, input.monitor, placement).to_json()


def point_settings(wildcards):
    exp, unit = experiment(wildcards), deployment(wildcards)
    point = exp.point(wildcards.point)
    return {
        "experiment": exp.name,
        "deployment": unit.id,
        "point": point.id,
        "repeat": point.repeat,
        "params": point.params,
        "swept": point.swept,
        "client_kind": exp.client.kind,
        "client_recipe": exp.client.name,
        "timeout_s": exp.client.timeout_s,
        "progress": PLAN.config["progress"],
        "service": {
            "kind": exp.service.kind,
            "recipe": exp.service.name,
            "swept": unit.swept,
        },
    }


def deployments_loaded_from(several):
    """A wildcard constraint matching the deployments whose points come from several client nodes
    (``several``), or the others; "(?!)" (matches nothing) when there are none."""
    units = [
        unit
        for unit, d in PLAN.deployments.items()
        if (PLAN.experiments[d.experiment].client_nodes > 1) == several
    ]
    return "|".join(re.escape(unit) for unit in units) or "(?!)"


def client_nodes_settings(wildcards):
    """A point's ClientNodes (aibench.clients.fanout): how many, and on SLURM the job of that many
    nodes (the client jobs' account, QoS and partition; --time for the point's time limit).
    """
    exp = experiment(wildcards)
    minutes = math.ceil((exp.client.timeout_s + CLIENT_NODES_REGISTER_S) / 60) + 10
    # per node as a point's job gets it (the profiles' default-resources: cpus_per_task 4, mem_mb 8000);
    # the experiment's placement does not apply: the job's nodes are SLURM's choice, in the run's
    # partition (a same-node client's would be the service's, e.g. gpu, for CPU-only agents)
    resources = {
        "partition": PLAN.config["slurm"]["partition"] or "",
        "time_min": minutes,
        "cpus": 4,
        "mem_mb": 8000,
    }
    return ClientNodes(
        nodes=exp.client_nodes,
        placement=launch_settings(resources),
        image=PLAN.config["container"] or None,
        register_timeout_s=CLIENT_NODES_REGISTER_S,
        queue_timeout_s=PLAN.config["slurm"]["queue_timeout_s"],
    ).to_json()


def client_placement(wildcards, input):
    """sbatch options placing a point's client on the service's node, or away from it."""
    if PLAN.config["launcher"] != "slurm":
        return ""
    # replicas: the client goes to the first one's node (or away from it)
    return placement_option(input.ready[0], experiment(wildcards).placement)


def slurm_account_of_run(wildcards):
    return account(PLAN.config) or ""


def slurm_qos_of_run(wildcards):
    """The run's QoS for client jobs (the plugin's `qos` resource; it refuses --qos in slurm_extra)."""
    return PLAN.config["slurm"]["qos"] or ""


def client_partition(wildcards):
    """A same-node client job asks for its service's partition (its node is in no other one)."""
    return client_partition_for(
        PLAN.config, experiment(wildcards), deployment(wildcards).service
    )


def stop_leftover_services():
    """When the run ends or fails: the client nodes' jobs a stopped coordinator left, then every
    service job still alive."""
    for line in cancel_leftover_jobs(RUN.client_node_jobs()):
        print(f"aibench: cancelled {line}")
    for line in stop_all(RUN.service_dirs()):
        print(f"aibench: stopped leftover service {line}")


def discard_earlier_state():
    """After a successful run: the data of deployments that were replaced is no longer needed."""
    for path in discard_retired_state(RUN.service_dirs()):
        print(f"aibench: removed an earlier deployment's state {path}")


def skip_scheduler_timers():
    """After a successful run, cancel the job scheduler's pending 1-second re-evaluation timers
    (threading.Timer): nothing is left to schedule, and Python would wait for them before exiting.
    """
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
