"""The report: the paper as one self-contained HTML page, assembled from the stages' outputs.

* :mod:`~lakepaper.report.outputs` — what a build holds (manifests, listed files), tolerant of missing stages;
* :mod:`~lakepaper.report.graph` — the stage graph from the manifests' ``inputs``, and Fig. 1 drawn from it;
* :mod:`~lakepaper.report.sections` — the text: sections, their titles, the stages' lines in Fig. 1;
* :mod:`~lakepaper.report.registry` — which stage and file make each figure and table; other figures' captions;
* :mod:`~lakepaper.report.numbers` — published-vs-run numbers, read from the stages' manifests;
* :mod:`~lakepaper.report.html` and :mod:`~lakepaper.report.colophon` — the page and its provenance;
* :mod:`~lakepaper.report.build` — :func:`build_paper` and the ``lakepaper paper`` command;
* :mod:`~lakepaper.report.browser` — the headless-Chromium check.

What ``PROFILE=paper`` needs before any stage runs is :mod:`lakepaper.prereqs`.

Example:
    >>> from lakepaper.report import build_paper
    >>> build_paper("demo")  # doctest: +SKIP
    PosixPath('.../build/demo/paper.html')
"""

from __future__ import annotations

from lakepaper.report.build import build_paper

__all__ = ["build_paper"]
