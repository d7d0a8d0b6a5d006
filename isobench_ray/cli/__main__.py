from isobench_ray.cli import main

main()
