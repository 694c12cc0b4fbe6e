"""Reports of studies: `python -m study.report FOLDER` (one study) and `python -m study.compare` (several).

load.py reads a study folder; plots.py draws the report's own figures and search.py Optuna's; page.py writes
self-contained HTML; sections.py assembles the study report; stats.py and compare.py make the comparison;
__main__.py is the report's command line (study/compare.py the comparison's).
"""
