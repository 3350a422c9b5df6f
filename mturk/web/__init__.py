"""The study server: the Flask app made by a small factory (``app``) from blueprints, the HIT
pages (``page``: the frame every design shares; ``twoafc_page`` and ``rating_page``: one per
design, with ``templates/2afc.html`` / ``rating.html`` and ``static/2afc.js`` / ``rating.js``) and
``serve``, the command (``python -m mturk.serve``)."""
