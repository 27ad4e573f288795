"""How the `embed` stage runs its items (a batch of tiles of one slide) on devices.

``pathgen.embed`` owns the stage (what to embed, resume, the per-slide arrays and meta); this
package owns the parts that make it scale: the items and their reassembly per slide (``plan``),
reading tiles (``tiles``), which devices to use (``devices``), and the two runners: several
devices of this machine with a reading pipeline each (``local``), or Ray Data with an actor pool
of encoders across a cluster (``ray_data``).
"""
