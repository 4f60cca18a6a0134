# Shipped vector datasets, remade only when asked (`make embeddings`): nothing in a benchmark's DAG
# needs this rule's output, so it runs only as an explicit target. It needs torch, which lives in its
# own venv (envs/install-embed.sh); benchmarks and tests read the shipped .npz with numpy alone.


rule embed_corpus:
    input:
        corpus="data/corpus/{corpus}.jsonl",
    output:
        npz="data/datasets/minilm-{corpus}.npz",
    log:
        "logs/embed_corpus/{corpus}.log",
    localrule: True
    shell:
        "(python=$(envs/install-embed.sh) && PYTHONPATH=. $python -m aibench.datasets.embed_corpus"
        " --corpus {input.corpus} --out {output.npz}) > {log} 2>&1"
