"""Work: programs, plans, phases, tasks (steps, todos, Nexus tasks), dependencies, ready work and
claims, archive — the first half of the domain (issue 15). model.py holds the rows; each other
module one job. Nothing is imported here, so any module may import `work.model` alone."""
