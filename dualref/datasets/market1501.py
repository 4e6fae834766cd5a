"""Market-1501 (Zheng et al., ICCV 2015): 1,501 identities, 6 cameras."""
import re

from .base import FolderDataset


class Market1501(FolderDataset):
    """``<root>/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}``.

    Official sizes: train 12,936 images / 751 ids; query 3,368; gallery 15,913.
    """

    name = "market1501"
    release = "Market-1501-v15.09.15"
    # PPPP_cCsS_FFFFFF_BB.jpg: id, camera, sequence, frame, box index.
    pattern = re.compile(r"(?P<pid>-?\d+)_c(?P<cam>\d)s\d+_\d+_\d+\.jpg")
    file_format = "PPPP_cCsS_FFFFFF_BB.jpg"
    num_cams = 6
