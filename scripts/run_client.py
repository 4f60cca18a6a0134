"""run_client: one point's load against the deployed service, written in the common schema."""

import signal
import sys
from pathlib import Path

from aibench.clients.runner import run_point_against
from aibench.contracts import ClientNodes
from aibench.rundir import PointDir, service_of
from aibench.snakemake_glue import script_logger

log = script_logger(snakemake.log, "client")
point = PointDir(Path(snakemake.output.summary).parent)
log.info("%s %s: started", snakemake.wildcards.deployment, point.path.name)
nodes = snakemake.params.get("nodes")  # run_client_nodes: the load comes from several client nodes
# a stopped run ends this script with SIGTERM: leave through `finally`, which cancels the client nodes
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
summary = run_point_against(
    [service_of(ready) for ready in snakemake.input.ready],  # one, or each replica's
    point,
    monitor_ready=snakemake.input.monitor[0] if snakemake.input.monitor else None,
    client_nodes=ClientNodes.from_json(nodes, "params.nodes") if nodes else None,
    **snakemake.params.point,
)
window = summary["window"]
log.info(
    "%s %s: %s in %.2f s", summary["experiment"], summary["point"], summary["status"], window["duration_s"]
)
if summary["status"] != "ok":
    kept = point.keep_attempt()
    log.error("point failed: %s (its summary and raw records are kept in %s)", summary["error"], kept)
    raise SystemExit(1)
