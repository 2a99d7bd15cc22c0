"""End-to-end demos behind ``structprune demo``: a real pretrained sentence-embedding model
(:mod:`.minilm`) and a small ResNet trained on Fashion-MNIST (:mod:`.vision`).

The data loaders, metrics and training loops here are small and self-contained so that tests can
drive them on synthetic data; the demos themselves need the packages that ``scripts/demo.sh``
installs (see the README).
"""
