"""Schedule: journey steps in the outbox, claimed when due after every exit condition is checked again."""
