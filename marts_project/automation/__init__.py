"""What keeps the marts fresh without anyone re-running anything: the landing sensor, the
automation condition every derived table carries, and the rolling reprocessing schedules."""
