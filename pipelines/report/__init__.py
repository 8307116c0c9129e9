"""The HTML report of a whole output tree (``winnow report``): funnel, scores, dedup, languages, topics and
mixtures, with PNG plots.  It sits on the top floor: it reads what every package wrote; nothing below imports it."""
