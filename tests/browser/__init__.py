"""The website's build and the course in a real browser (run by .ci/run's second step; see conftest.py)."""
