"""jobsvc: the domain of the job lifecycle service (states, storage, jobs, auth)."""
