# One job per sweep point; points of one experiment share one deployment.
# The load_slots resource (1 in the profiles) keeps loads from overlapping and distorting each other.


rule run_client:
    input:
        ready=f"{RESULTS}/{{experiment}}/service/ready.json",
        monitor=monitor_ready,
    output:
        raw=f"{RESULTS}/{{experiment}}/points/{{point}}/raw.csv.gz",
        summary=f"{RESULTS}/{{experiment}}/points/{{point}}/summary.json",
    log:
        f"{RESULTS}/{{experiment}}/points/{{point}}/client.log",
    resources:
        load_slots=1,
    params:
        point=point_settings,
    script:
        "../scripts/run_client.py"
