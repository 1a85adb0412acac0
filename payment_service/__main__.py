from ticketing_common import runtime

from .app import run
from .settings import PaymentSettings

if __name__ == "__main__":
    runtime.run(run, PaymentSettings)
