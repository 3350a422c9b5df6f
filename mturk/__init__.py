"""mturk: 2AFC study design, the HIT page and server, judgments, labels, and MTurk publishing."""
