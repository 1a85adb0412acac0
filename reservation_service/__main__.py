from ticketing_common import runtime

from .app import run
from .settings import ReservationSettings

if __name__ == "__main__":
    runtime.run(run, ReservationSettings)
