"""Discovery tasks (discovery.*): budgeted polling, room look-ups, callbacks, fan-out."""
