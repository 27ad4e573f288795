"""The review of a run's pairs by people: the local web app, its SQLite of decisions, and the one
hook export calls (:func:`pathgen.review.curate.curate`)."""
