"""Payment service: takes payments for held seats, and runs the saga that
turns an authorized payment into confirmed seats and captured money, or
gives the money back."""
