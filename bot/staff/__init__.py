"""The people: staff from the config as Actors, their rights, and the duty rota."""
