"""``python -m benchmarks.peer_examples``: run every example on both libraries (see ``runner``)."""

from benchmarks.peer_examples.runner import main

main()
