import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from medcls.metrics.figures import confusion_figure, image_grid, prediction_grid


def tick_labels(figure: Figure, axis: str) -> list[str]:
    return [label.get_text() for label in getattr(figure.axes[0], f"get_{axis}ticklabels")()]


def cell_texts(figure: Figure) -> list[list[str]]:
    """The text of each cell, rows true and columns predicted, from where each text is drawn."""
    cells = {}
    for text in figure.axes[0].texts:
        column, row = text.get_position()
        cells[round(row), round(column)] = text.get_text()
    size = round(len(cells) ** 0.5)
    return [[cells[row, column] for column in range(size)] for row in range(size)]


def test_confusion_figure_names_both_axes_and_counts_rows_true_columns_predicted() -> None:
    names = ["no DR", "moderate", "proliferative"]
    figure = confusion_figure(torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]]), names, "dr")
    assert tick_labels(figure, "x") == tick_labels(figure, "y") == names
    assert cell_texts(figure) == [["5", "1", "0"], ["2", "3", "0"], ["0", "0", "0"]]
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "dr")
    assert all(label.get_rotation() == 45 for label in ax.get_xticklabels())  # long names would overlap


def test_normalised_confusion_figure_shows_the_fractions_of_each_true_class() -> None:
    figure = confusion_figure(np.array([[3, 1], [0, 0]]), ["0", "1"], "digit", normalised=True)
    assert cell_texts(figure) == [["0.75", "0.25"], ["0.00", "0.00"]]  # a class without images: no division by 0
    assert all(label.get_rotation() == 0 for label in figure.axes[0].get_xticklabels())


def test_a_confusion_matrix_of_other_classes_than_named_is_refused() -> None:
    with pytest.raises(ValueError, match="3 classes must be 3 x 3, not \\(2, 2\\)"):
        confusion_figure(np.eye(2), ["a", "b", "c"], "dr")


def test_image_grid_shows_values_as_they_are_and_prediction_grid_stretches_each_image() -> None:
    images = torch.tensor([0.2, 0.6, 1.5]).view(1, 1, 1, 3).repeat(2, 1, 2, 1)
    shown = image_grid(images, ["a", "b"]).axes[0].images[0]
    np.testing.assert_allclose(shown.get_array(), [[0.2, 0.6, 1.0]] * 2)  # above 1: clipped
    assert shown.get_clim() == (0, 1)
    grid = prediction_grid(images, ["right", "wrong"], [True, False])
    np.testing.assert_allclose(grid.axes[0].images[0].get_array(), [[0.0, 0.4 / 1.3, 1.0]] * 2, rtol=1e-6)
    assert [text.get_color() for text in grid.axes[0].texts] == ["tab:green", "tab:red"]
