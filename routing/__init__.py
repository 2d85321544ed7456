"""Department directory and regions, dispatch rules, time-limit policy and calendar."""
