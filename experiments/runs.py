"""Every run behind the tables and figures of experiments/README.md, in the order to make them.

Each entry is one command line of a script in this folder. ``run_all.py`` runs them: the
chunked scripts (``run_experiment.py``, ``calibration.py``) a few chunks per process until
nothing is left (every chunk is a file, so a run resumes where it stopped), the others once,
skipped when their result file exists. ``python experiments/tables.py`` then rebuilds the
tables and figures from the merged results.

Fields: ``name`` (unique, for ``run_all.py --only``), ``script``, ``args`` (its command line),
``chunks_per_call`` (chunked scripts: new chunks per process; each process re-imports eventsnn)
or ``output`` (one-shot scripts: the result file, relative to ``experiments/results``).
"""

# Table 1 rows of the networks: Burst Γ=5 + LIPool (the Table 2 row, to T=256) first, then
# the other rows to T=64. Networks without MaxPool record the pooling rows as "= p-Norm".
TABLE1 = "burst5-lipool:256,pnorm,maxnorm,burst2-lipool,pnorm-lipool,pnorm-avgpool"

RUNS = [
    # Fashion-MNIST VGG (the shipped model): Table 1 with the extra row, Fig. 5b, T -> inf,
    # calibration sensitivity
    dict(name="fmnist-vgg", script="run_experiment.py", chunks_per_call=6,
         args=["--model", "fmnist-vgg", "--T", "64",
               "--configs", TABLE1 + ",burst5-lipool-pnorm"]),
    dict(name="fmnist-vgg-pooling", script="pooling.py", output="fmnist-vgg/pooling.json",
         args=["--model", "fmnist-vgg", "--n", "500", "--T", "4,8,16,32,64,128"]),
    dict(name="fmnist-vgg-analog", script="analog_limit.py", output="fmnist-vgg/analog_limit.json",
         args=["--model", "fmnist-vgg", "--configs", "pnorm,pnorm-avgpool,pnorm-lipool,burst5-lipool"]),
    dict(name="fmnist-vgg-calibration", script="calibration.py", chunks_per_call=6,
         args=["--model", "fmnist-vgg", "--T", "64"]),
    # networks trained in models/
    dict(name="fmnist-resnet8", script="run_experiment.py", chunks_per_call=6,
         args=["--model", "fmnist-resnet8", "--T", "64", "--configs", TABLE1]),
    dict(name="mnist-resnet8", script="run_experiment.py", chunks_per_call=6,
         args=["--model", "mnist-resnet8", "--T", "64", "--configs", TABLE1]),
    dict(name="mnist-vgg", script="run_experiment.py", chunks_per_call=6,
         args=["--model", "mnist-vgg", "--T", "64", "--configs", TABLE1]),
    dict(name="mnist-vgg-pooling", script="pooling.py", output="mnist-vgg/pooling.json",
         args=["--model", "mnist-vgg", "--n", "500"]),
    dict(name="cifar10-vgg", script="run_experiment.py", chunks_per_call=3,
         args=["--model", "cifar10-vgg", "--T", "64", "--configs", TABLE1]),
    dict(name="cifar10-vgg-pooling", script="pooling.py", output="cifar10-vgg/pooling.json",
         args=["--model", "cifar10-vgg", "--n", "300"]),
    # pretrained CIFAR-10 ResNets (../shared/models)
    dict(name="resnet20", script="run_experiment.py", chunks_per_call=10,
         args=["--model", "resnet20", "--T", "64", "--configs", TABLE1]),
    dict(name="resnet20-calibration", script="calibration.py", chunks_per_call=10,
         args=["--model", "resnet20", "--T", "64", "--n-test", "500"]),
    dict(name="resnet20-errors", script="error_analysis.py",
         output="resnet20/errors_burst5-lipool_T64.json",
         args=["--model", "resnet20", "--config", "burst5-lipool", "--T", "64", "--n", "200"]),
    # partial so far (3900 / 3600 of 10 000 images): the same command continues it
    dict(name="resnet56", script="run_experiment.py", chunks_per_call=10,
         args=["--model", "resnet56", "--T", "64",
               "--configs", "burst5-lipool:256,maxnorm,pnorm,burst2-lipool"]),
]
