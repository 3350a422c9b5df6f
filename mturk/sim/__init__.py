"""Simulated crowds and what they measure: worker types and the HTTP loop every simulated worker
runs (``workers``), one crowd per design (``twoafc_crowd``, ``rating_crowd``) behind one command
(``crowd``: ``python -m mturk.sim.crowd``), a lab study answered in process
(``simulated_study``), a report per design (``twoafc_report``, ``rating_report``), a synthetic
distortions index (``toy_index``) and the small HTTP client (``http_client``). Everything here
is SIMULATED: no person's judgment."""
