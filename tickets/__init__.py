"""Work orders: model, workflow state machine, SQL store, audit events, numbering, statistics."""
