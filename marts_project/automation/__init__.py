"""What keeps the marts fresh by itself: the landing sensor, automation conditions, schedules."""
