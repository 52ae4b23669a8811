# Aggregation: every run's metrics -> the long table; the selection of each variant's sweep
# point on validation (selection.csv); summary tables per split of the selected points (CSV,
# Markdown, LaTeX, with the paper's numbers beside mapped rows), and the same under the strict
# parser (summary_{split}_strict.*), each cell with its 95 % interval; paired comparisons of
# every variant with the reference (comparisons.*, plots/comparisons_{dataset}.png) and the
# report's headline (headline.rst); every point per split (sweep_{split}.csv); plots, all in
# the report.


rule aggregate:
    input:
        metrics=jobs.metrics_files(GRID),
    output:
        long=report("results/tables/long.csv", caption="../report/long.rst", category="Tables"),
        selection=report(
            multiext("results/tables/selection", ".csv", ".md"),
            caption="../report/selection.rst",
            category="Tables",
        ),
        summaries=report(
            expand(
                "results/tables/summary_{split}.{ext}",
                split=config["splits"],
                ext=["csv", "md", "tex"],
            ),
            caption="../report/summary.rst",
            category="Tables",
        ),
        strict_summaries=report(
            expand(
                "results/tables/summary_{split}_strict.{ext}",
                split=config["splits"],
                ext=["csv", "md", "tex"],
            ),
            caption="../report/summary_strict.rst",
            category="Tables",
        ),
        comparisons=report(
            multiext("results/tables/comparisons", ".csv", ".md"),
            caption="../report/comparisons.rst",
            category="Tables",
        ),
        headline="results/tables/headline.rst",
        forest_plots=report(
            expand("results/plots/comparisons_{dataset}.png", dataset=config["datasets"]),
            caption="../report/forest_plot.rst",
            category="Plots",
        ),
        sweeps=report(
            expand("results/tables/sweep_{split}.csv", split=config["splits"]),
            caption="../report/sweep_table.rst",
            category="Tables",
        ),
        by_variant=report(
            "results/plots/accuracy_by_variant.png",
            caption="../report/accuracy_by_variant.rst",
            category="Plots",
        ),
        vs_share=report(
            "results/plots/accuracy_vs_share.png",
            caption="../report/accuracy_vs_share.rst",
            category="Plots",
        ),
        rewards=report(
            "results/tables/rewards.csv", caption="../report/rewards.rst", category="Tables"
        ),
        reward_plot=report(
            "results/plots/rewards.png", caption="../report/rewards_plot.rst", category="Plots"
        ),
        sweep_plots=report(
            expand("results/plots/sweep_{dataset}.png", dataset=config["datasets"]),
            caption="../report/sweep_plot.rst",
            category="Plots",
        ),
    params:
        references=jobs.references(config),
        flags=jobs.aggregate_flags(config),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    shell:
        "python scripts/aggregate.py --metrics {input.metrics:q} --references {params.references:q}"
        " --out-dir results/tables --plots-dir results/plots --require-complete {params.flags}"
        " > {log:q} 2>&1"
