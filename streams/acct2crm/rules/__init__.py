"""The business rules of docs/rules.md, as pure functions.

Nothing here imports Faust, Kafka or HTTP: the rules are decided from plain
values so they can be tested exhaustively. ``classify`` settles everything
that needs no CRM knowledge; ``decide`` settles the rest from a view of the
CRM records holding the codes involved.
"""
