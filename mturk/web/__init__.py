"""The study server: the Flask app made by a small factory (``app``) from the study loaded once
(``loaded_study``) and one blueprint per kind of route (``task_routes``: the HIT page, its JSON
and the submission; ``lab_routes``: participant links; ``file_routes``: keyed images and the
page's assets; ``health_routes``), HTTP statuses by error type (``errors``), the HIT pages
(``page``: the frame every design shares; ``twoafc_page`` and ``rating_page``: one per design,
with ``templates/2afc.html`` / ``rating.html`` and ``static/2afc.js`` / ``rating.js``) and
``serve``, the command (``python -m mturk.serve``)."""
