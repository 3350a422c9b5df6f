"""From the database to the tables downstream: a 2AFC study's labels (``aggregate``, after
worker quality control: ``worker_quality``) and a rating study's opinion scores (``mos``, after
BT.500 observer screening: ``screening``, with the per-worker bias model ``sureal``)."""
