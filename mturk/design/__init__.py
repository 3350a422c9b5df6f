"""The study designs' trials: 2AFC pairs with sentinels and repeats (``twoafc``) and absolute
ratings, ACR and DSIS (``rating``); which design a study is (``study``); the shown images, centre
crops and the sentinels' near-lossless side (``crops``); ``trials``, the command that writes a
study's ``trials.csv`` for either design (``python -m mturk.trials``)."""
