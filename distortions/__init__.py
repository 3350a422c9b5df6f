"""distortions: reference images compressed by classic and learned codecs at target bitrates."""
