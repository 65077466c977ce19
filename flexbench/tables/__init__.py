"""Paper tables, figures and the static HTML leaderboard, rendered from stored results only.

Entry points: :func:`flexbench.tables.build.render_outputs` (everything ``flexbench
tables`` writes) and :func:`flexbench.tables.build.write_html` (the static page, used
by ``flexbench leaderboard --html``). Layouts live in :mod:`flexbench.tables.layout`,
the paper's numbers in ``paper_numbers.csv``.
"""
