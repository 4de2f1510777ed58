"""The paper: one self-contained HTML page assembled from the stages' outputs.

* :mod:`~lakepaper.paper.run` — what a build holds (manifests, listed files), tolerant of missing stages;
* :mod:`~lakepaper.paper.graph` — the stage graph from the manifests' ``inputs``, and Fig. 1 drawn from it;
* :mod:`~lakepaper.paper.sections` — the text: sections, their titles, the stages' lines in Fig. 1;
* :mod:`~lakepaper.paper.registry` — which stage and file make each figure and table; other figures' captions;
* :mod:`~lakepaper.paper.numbers` — published-vs-run numbers, read from the stages' manifests;
* :mod:`~lakepaper.paper.html` and :mod:`~lakepaper.paper.colophon` — the page and its provenance;
* :mod:`~lakepaper.paper.build` — :func:`build_paper` and the ``lakepaper paper`` command;
* :mod:`~lakepaper.paper.browser` — the headless-Chromium check;
* :mod:`~lakepaper.paper.prereqs` — what ``PROFILE=paper`` needs, checked up front.

Example:
    >>> from lakepaper.paper import build_paper
    >>> build_paper("demo")  # doctest: +SKIP
    PosixPath('.../build/demo/paper.html')
"""

from __future__ import annotations

from lakepaper.paper.build import build_paper

__all__ = ["build_paper"]
