"""The fault drill (`make drill`): faults imposed on the running local platform while real
traffic flows, each followed by its recovery time and a count of effects lost and doubled."""
